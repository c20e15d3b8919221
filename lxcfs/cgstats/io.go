package cgstats

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// DeviceIO is the I/O a container did on one block device.
type DeviceIO struct {
	Major, Minor          uint32
	ReadBytes, WriteBytes uint64
	Reads, Writes         uint64 // completed requests
}

// ReadIO reads the io accounting: v1 blkio (throttle statistics, which
// count every request) or cgroup2 io.stat. Devices come sorted by number.
func ReadIO(cg Cgroups) ([]DeviceIO, error) {
	if dir, ok := cg.v1Dir("blkio"); ok {
		return readIOV1(dir)
	}
	if dir, ok := cg.v2Dir("io.stat"); ok {
		return readIOV2(dir)
	}
	return nil, fmt.Errorf("io: %w", ErrNoController)
}

type devices map[[2]uint32]*DeviceIO

func (d devices) get(spec string) (*DeviceIO, bool) {
	maj, min, ok := strings.Cut(spec, ":")
	if !ok {
		return nil, false
	}
	a, err1 := strconv.ParseUint(maj, 10, 32)
	b, err2 := strconv.ParseUint(min, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, false
	}
	key := [2]uint32{uint32(a), uint32(b)}
	if d[key] == nil {
		d[key] = &DeviceIO{Major: key[0], Minor: key[1]}
	}
	return d[key], true
}

func (d devices) sorted() []DeviceIO {
	out := make([]DeviceIO, 0, len(d))
	for _, v := range d {
		out = append(out, *v)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Major != out[j].Major {
			return out[i].Major < out[j].Major
		}
		return out[i].Minor < out[j].Minor
	})
	return out
}

// readIOV1 reads lines like "8:0 Read 4096" from the recursive throttle
// files (the container's whole subtree).
func readIOV1(dir string) ([]DeviceIO, error) {
	devs := devices{}
	files := []struct {
		name        string
		read, write func(*DeviceIO) *uint64
	}{
		{"blkio.throttle.io_service_bytes_recursive", func(d *DeviceIO) *uint64 { return &d.ReadBytes }, func(d *DeviceIO) *uint64 { return &d.WriteBytes }},
		{"blkio.throttle.io_serviced_recursive", func(d *DeviceIO) *uint64 { return &d.Reads }, func(d *DeviceIO) *uint64 { return &d.Writes }},
	}
	for _, f := range files {
		s, err := readString(dir, f.name)
		if err != nil {
			return nil, err
		}
		for _, line := range strings.Split(s, "\n") {
			fields := strings.Fields(line)
			if len(fields) != 3 {
				continue
			}
			d, ok := devs.get(fields[0])
			n, err := strconv.ParseUint(fields[2], 10, 64)
			if !ok || err != nil {
				continue
			}
			switch fields[1] {
			case "Read":
				*f.read(d) += n
			case "Write":
				*f.write(d) += n
			}
		}
	}
	return devs.sorted(), nil
}

// readIOV2 reads io.stat lines like "8:0 rbytes=1 wbytes=2 rios=3 wios=4 ...".
func readIOV2(dir string) ([]DeviceIO, error) {
	s, err := readString(dir, "io.stat")
	if err != nil {
		return nil, err
	}
	devs := devices{}
	for _, line := range strings.Split(s, "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		d, ok := devs.get(fields[0])
		if !ok {
			continue
		}
		for _, kv := range fields[1:] {
			k, v, _ := strings.Cut(kv, "=")
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				continue
			}
			switch k {
			case "rbytes":
				d.ReadBytes = n
			case "wbytes":
				d.WriteBytes = n
			case "rios":
				d.Reads = n
			case "wios":
				d.Writes = n
			}
		}
	}
	return devs.sorted(), nil
}

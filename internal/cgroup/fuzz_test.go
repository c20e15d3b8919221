package cgroup

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func addTestdataSeeds(f *testing.F, ext string) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*."+ext))
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(data))
	}
}

func FuzzParseMountinfo(f *testing.F) {
	addTestdataSeeds(f, "mountinfo")
	f.Fuzz(func(t *testing.T, text string) {
		mounts, err := ParseMountinfo(strings.NewReader(text))
		if err != nil {
			return
		}
		for _, m := range mounts {
			if m.FSType == "" || m.Mountpoint == "" {
				t.Fatalf("accepted a mount without type or mountpoint: %+v", m)
			}
		}
	})
}

func FuzzParseProcCgroup(f *testing.F) {
	addTestdataSeeds(f, "cgroup")
	f.Fuzz(func(t *testing.T, text string) {
		cgs, err := ParseProcCgroup(strings.NewReader(text))
		if err != nil {
			return
		}
		for _, pc := range cgs {
			if pc.ID != 0 && len(pc.Controllers) == 0 && pc.Name == "" {
				t.Fatalf("accepted a v1 line without controllers or name: %+v", pc)
			}
		}
	})
}

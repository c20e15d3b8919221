package cgstats

import "fmt"

// Memory is a container's memory accounting, in bytes.
type Memory struct {
	Limit uint64 // memory limit; Unlimited when none
	Usage uint64 // all charged memory, page cache included

	// From memory.stat, for the container and everything below it.
	Anon, File, Shmem                     uint64 // File is the page cache, shmem included
	ActiveAnon, InactiveAnon              uint64
	ActiveFile, InactiveFile              uint64
	Unevictable, Mapped, Dirty, Writeback uint64
	SlabReclaimable, SlabUnreclaimable    uint64 // 0 on v1
	KernelStack, PageTables               uint64 // 0 on v1
	SwapLimit                             uint64 // swap the container may use; Unlimited when none
	SwapUsage                             uint64
	SwapAccounted                         bool // false: the kernel does not account swap per cgroup
	Version                               int  // 1 or 2: where it was read
}

// ReadMemory reads the memory controller: v1 where a v1 hierarchy has it,
// else cgroup2.
func ReadMemory(cg Cgroups) (Memory, error) {
	if dir, ok := cg.v1Dir("memory"); ok {
		m, err := readMemoryV1(dir)
		if err != nil {
			return m, fmt.Errorf("memory (cgroup v1) %s: %w", dir, err)
		}
		return m, nil
	}
	if dir, ok := cg.v2Dir("memory.max"); ok {
		m, err := readMemoryV2(dir)
		if err != nil {
			return m, fmt.Errorf("memory (cgroup2) %s: %w", dir, err)
		}
		return m, nil
	}
	return Memory{}, fmt.Errorf("memory: %w", ErrNoController)
}

func readMemoryV1(dir string) (Memory, error) {
	m := Memory{Version: 1}
	limit, err := readUint(dir, "memory.limit_in_bytes")
	if err != nil {
		return m, err
	}
	if m.Usage, err = readUint(dir, "memory.usage_in_bytes"); err != nil {
		return m, err
	}
	stat, err := readKeyed(dir, "memory.stat")
	if err != nil {
		return m, err
	}
	// hierarchical_memory_limit is the smallest limit on the way to the
	// root: a parent's limit binds the container too.
	m.Limit = v1Limit(limit)
	if h, ok := stat["hierarchical_memory_limit"]; ok {
		m.Limit = min(m.Limit, v1Limit(h))
	}
	m.Anon = stat["total_rss"]
	m.File = stat["total_cache"]
	m.Shmem = stat["total_shmem"]
	m.ActiveAnon, m.InactiveAnon = stat["total_active_anon"], stat["total_inactive_anon"]
	m.ActiveFile, m.InactiveFile = stat["total_active_file"], stat["total_inactive_file"]
	m.Unevictable = stat["total_unevictable"]
	m.Mapped = stat["total_mapped_file"]
	m.Dirty, m.Writeback = stat["total_dirty"], stat["total_writeback"]

	// memsw counts memory plus swap; without swap accounting the files
	// are absent.
	m.SwapLimit = Unlimited
	memsw, err := readUint(dir, "memory.memsw.limit_in_bytes")
	if err != nil {
		return m, nil
	}
	swUsage, err := readUint(dir, "memory.memsw.usage_in_bytes")
	if err != nil {
		return m, nil
	}
	m.SwapAccounted = true
	memsw = v1Limit(memsw)
	if h, ok := stat["hierarchical_memsw_limit"]; ok {
		memsw = min(memsw, v1Limit(h))
	}
	if memsw != Unlimited {
		m.SwapLimit = sub(memsw, m.Limit)
	}
	m.SwapUsage = sub(swUsage, m.Usage)
	return m, nil
}

func readMemoryV2(dir string) (Memory, error) {
	m := Memory{Version: 2}
	var err error
	if m.Limit, err = readUint(dir, "memory.max"); err != nil {
		return m, err
	}
	if m.Usage, err = readUint(dir, "memory.current"); err != nil {
		return m, err
	}
	stat, err := readKeyed(dir, "memory.stat")
	if err != nil {
		return m, err
	}
	m.Anon, m.File, m.Shmem = stat["anon"], stat["file"], stat["shmem"]
	m.ActiveAnon, m.InactiveAnon = stat["active_anon"], stat["inactive_anon"]
	m.ActiveFile, m.InactiveFile = stat["active_file"], stat["inactive_file"]
	m.Unevictable = stat["unevictable"]
	m.Mapped = stat["file_mapped"]
	m.Dirty, m.Writeback = stat["file_dirty"], stat["file_writeback"]
	m.SlabReclaimable, m.SlabUnreclaimable = stat["slab_reclaimable"], stat["slab_unreclaimable"]
	m.KernelStack, m.PageTables = stat["kernel_stack"], stat["pagetables"]

	m.SwapLimit = Unlimited
	if swap, err := readUint(dir, "memory.swap.max"); err == nil {
		m.SwapAccounted = true
		m.SwapLimit = swap
		m.SwapUsage, _ = readUint(dir, "memory.swap.current")
	}
	return m, nil
}

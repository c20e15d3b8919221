package main

// int80 makes a system call through the 32-bit ABI (int80_amd64.s).
func int80(nr uintptr) uintptr

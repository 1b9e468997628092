//go:build !linux

package fsm

// dropMapped does nothing outside Linux.
func dropMapped(string) {}

package discovery

// CachedRecords is how many records the Finder holds, expired or not.
func (f *Finder) CachedRecords() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.records)
}

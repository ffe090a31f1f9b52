// Package version holds the build's version string and the protocol
// versions this implementation speaks.
package version

// Version is set at link time by the Makefile (-X); "dev" otherwise.
var Version = "dev"

// Runtime names the execution engine in capability records and receipts.
const Runtime = "wazero"

// RuntimeVersion is the wazero release compiled in.
const RuntimeVersion = "v1.12.0"

//go:build php

package conformance

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The API-client side against the PHP client of examples/php, through
// clients/php-client.php (needs php-cli with sodium: `go test -tags php`).
func TestAPIClientPHP(t *testing.T) {
	php, err := exec.LookPath("php")
	require.NoError(t, err, "php-cli is needed: apt-get install php-cli")
	script, err := filepath.Abs("clients/php-client.php")
	require.NoError(t, err)
	rep := runSide(t, php+" "+script, SideAPIClient, Options{Parallel: 4})
	requireAllPass(t, rep)

	// It bites: the same client taking answers unverified fails the
	// signature, hash and response checks.
	rep = runSide(t, "PHASE_MUTANT=no-verify "+php+" "+script, SideAPIClient,
		Options{Parallel: 4, Run: regexp.MustCompile(`^api-client/(receipt/(forged-signature|wrong-module-hash|wrong-input-hash)|output/altered)$`)})
	for _, id := range []string{"API-20", "API-21", "API-22", "API-23"} {
		assert.Contains(t, rep.Failed(), id, "unverified PHP client survives %s", id)
	}
}

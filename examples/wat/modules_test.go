package wat

import (
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestModuleIsTheCommittedFile(t *testing.T) {
	for _, name := range []string{"tiny", "echo", "trap"} {
		want, err := os.ReadFile(name + ".wasm")
		require.NoError(t, err)
		got, err := Module(name)
		require.NoError(t, err)
		assert.Equal(t, want, got, name)
	}
	_, err := Module("hello")
	assert.ErrorContains(t, err, "module hello: not one of the built-in modules")
}

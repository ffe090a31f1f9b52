;; wat2wasm --debug-names
(module (import "wasi_snapshot_preview1" "nope" (func)) (func (export "_start")))

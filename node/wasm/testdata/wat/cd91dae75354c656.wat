;; wat2wasm --debug-names
(module (import "wasi_snapshot_preview1" "g" (global i32)) (func (export "_start")))

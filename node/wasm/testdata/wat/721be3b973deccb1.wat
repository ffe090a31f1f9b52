;; wat2wasm --debug-names
(module
  (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
  (import "env" "t" (table 1 funcref))
  (import "env" "g" (global (mut i32)))
  (func (export "_start")))

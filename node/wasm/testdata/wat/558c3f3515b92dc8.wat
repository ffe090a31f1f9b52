;; wat2wasm --debug-names
(module
  (func $boom unreachable)
  (start $boom)
  (func (export "_start")))

;; wat2wasm --debug-names
(module (import "env" "f" (func)) (func (export "_start")))

;; wat2wasm --debug-names
(module (func (export "main")))

;; wat2wasm --debug-names
(module (func (export "_start") (param i32)))

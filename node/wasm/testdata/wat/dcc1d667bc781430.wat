;; wat2wasm --debug-names --no-check
(module (func (export "_start") (result i32) (i32.const 1)) (func (drop (i32.const 1)) (drop)))

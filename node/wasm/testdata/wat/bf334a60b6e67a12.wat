;; wat2wasm --debug-names
(module
  (memory 1 2)
  (func (export "_start")
    (if (i32.eq (memory.grow (i32.const 5)) (i32.const -1))
      (then unreachable))))

;; Spins forever: the executor's wall-clock deadline must stop it.
(module
  (memory (export "memory") 1)
  (func (export "_start")
    (loop $forever (br $forever))))

;; Grows memory one page at a time until memory.grow fails, then traps:
;; the executor must report the memory limit, not a plain trap.
(module
  (memory (export "memory") 1)
  (func (export "_start")
    (loop $more
      (if (i32.eq (memory.grow (i32.const 1)) (i32.const -1))
        (then unreachable))
      (br $more))))

;; Executes `unreachable` at once: a trap outcome.
(module
  (memory (export "memory") 1)
  (func (export "_start") unreachable))

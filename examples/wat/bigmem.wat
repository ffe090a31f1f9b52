;; Declares a minimum of 40000 pages (2.5 GiB): must be refused before it runs.
(module
  (memory (export "memory") 40000)
  (func (export "_start")))

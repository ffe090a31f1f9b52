;; Grows its memory from 1 page to 128 (8 MiB), writes "ok\n" and returns;
;; traps if the grow is refused. A node that ignores a memory limit below
;; 8 MiB lets it exit (the conformance suite's check of EXEC-2).
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "\08\00\00\00\03\00\00\00")
  (data (i32.const 8) "ok\n")
  (func (export "_start")
    (if (i32.eq (memory.grow (i32.const 127)) (i32.const -1))
      (then unreachable))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16)))))

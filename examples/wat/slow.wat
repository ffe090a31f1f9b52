;; Sleeps two seconds (WASI poll_oneoff on the monotonic clock), then
;; writes "done\n" and exits 0: a job that is still running when a test
;; kills its node.
(module
  (import "wasi_snapshot_preview1" "poll_oneoff"
    (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; subscription at 0: userdata 0, tag 0 (clock), clock id 1 (monotonic),
  ;; timeout 2e9 ns (relative), precision 0, flags 0
  (data (i32.const 8) "\00")
  (data (i32.const 16) "\01\00\00\00")
  (data (i32.const 24) "\00\94\35\77\00\00\00\00")
  ;; iovec at 100: buf 112, len 5; "done\n" at 112
  (data (i32.const 100) "\70\00\00\00\05\00\00\00")
  (data (i32.const 112) "done\n")
  (func (export "_start")
    (drop (call $poll_oneoff (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 96)))
    (drop (call $fd_write (i32.const 1) (i32.const 100) (i32.const 1) (i32.const 108)))))

;; Reports what the sandbox shows a guest, as 64 raw bytes on stdout:
;;   0  u32 environment variable count     4 u32 environment buffer size
;;   8  u32 errno of fd_prestat_get(3) (8 = EBADF: no preopened directory)
;;  12  u32 errno of path_open in fd 3     16 u64 realtime clock, 1st reading
;;  24  u64 realtime, 2nd                  32 u64 monotonic, 1st
;;  40  u64 monotonic, 2nd                 48 16 bytes of random_get
;; The conformance suite checks isolation (EXEC-1) and the deterministic
;; clock and random source (EXEC-6) with it.
(module
  (import "wasi_snapshot_preview1" "environ_sizes_get"
    (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_get"
    (func $fd_prestat_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get"
    (func $clock_time_get (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get"
    (func $random_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; 1024: the report, 2048: iovec, 2064: scratch, 2080: "etc"
  (data (i32.const 2080) "etc")
  (func (export "_start")
    (drop (call $environ_sizes_get (i32.const 1024) (i32.const 1028)))
    (i32.store (i32.const 1032) (call $fd_prestat_get (i32.const 3) (i32.const 2064)))
    (i32.store (i32.const 1036)
      (call $path_open (i32.const 3) (i32.const 0) (i32.const 2080) (i32.const 3) (i32.const 0)
        (i64.const 1) (i64.const 1) (i32.const 0) (i32.const 2064)))
    (drop (call $clock_time_get (i32.const 0) (i64.const 1) (i32.const 1040)))
    (drop (call $clock_time_get (i32.const 0) (i64.const 1) (i32.const 1048)))
    (drop (call $clock_time_get (i32.const 1) (i64.const 1) (i32.const 1056)))
    (drop (call $clock_time_get (i32.const 1) (i64.const 1) (i32.const 1064)))
    (drop (call $random_get (i32.const 1072) (i32.const 16)))
    (i32.store (i32.const 2048) (i32.const 1024))
    (i32.store (i32.const 2052) (i32.const 64))
    (drop (call $fd_write (i32.const 1) (i32.const 2048) (i32.const 1) (i32.const 2064)))))

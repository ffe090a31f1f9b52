;; Echoes its input: every argument (argv[0] first) followed by "\n", then
;; all of stdin, to stdout; then returns (exit 0). The conformance suite
;; uses it to see exactly what a node gave the guest (EXEC-1).
(module
  (import "wasi_snapshot_preview1" "args_sizes_get"
    (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get"
    (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read"
    (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  ;; 0: argc, 4: argv buf size, 8: iovec (ptr, len), 16: nread/nwritten,
  ;; 32: "\n", 1024: argv pointers, 65536: argv strings, 131072: stdin buffer.
  (memory (export "memory") 4)
  (data (i32.const 32) "\n")
  (func $write (param $ptr i32) (param $len i32)
    (i32.store (i32.const 8) (local.get $ptr))
    (i32.store (i32.const 12) (local.get $len))
    (drop (call $fd_write (i32.const 1) (i32.const 8) (i32.const 1) (i32.const 16))))
  (func $strlen (param $p i32) (result i32)
    (local $n i32)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (i32.load8_u (i32.add (local.get $p) (local.get $n)))))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br $next)))
    (local.get $n))
  (func (export "_start")
    (local $i i32) (local $p i32) (local $n i32)
    (drop (call $args_sizes_get (i32.const 0) (i32.const 4)))
    (drop (call $args_get (i32.const 1024) (i32.const 65536)))
    (block $args_done
      (loop $arg
        (br_if $args_done (i32.ge_u (local.get $i) (i32.load (i32.const 0))))
        (local.set $p (i32.load (i32.add (i32.const 1024) (i32.mul (local.get $i) (i32.const 4)))))
        (call $write (local.get $p) (call $strlen (local.get $p)))
        (call $write (i32.const 32) (i32.const 1))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $arg)))
    (block $eof
      (loop $read
        (i32.store (i32.const 8) (i32.const 131072))
        (i32.store (i32.const 12) (i32.const 65536))
        (br_if $eof (i32.ne (call $fd_read (i32.const 0) (i32.const 8) (i32.const 1) (i32.const 16)) (i32.const 0)))
        (local.set $n (i32.load (i32.const 16)))
        (br_if $eof (i32.eqz (local.get $n)))
        (call $write (i32.const 131072) (local.get $n))
        (br $read)))))

;; CPU-bound: N million rounds of xorshift64 (N = the first argument in
;; decimal, 2048 without one), then writes the final state as 16 hex digits
;; and a newline: the tiered executor's long-first-job benchmark
;; (BenchmarkCPUFirstJob picks N so that the compiled run takes seconds).
(module
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "0123456789abcdef")
  (func (export "_start")
    (local $x i64) (local $n i64) (local $i i32) (local $p i32) (local $c i32)
    ;; argc at 100, argv pointers at 1024, argument bytes from 2048
    (local.set $n (i64.const 2048))
    (drop (call $args_sizes_get (i32.const 100) (i32.const 104)))
    (if (i32.and (i32.ge_u (i32.load (i32.const 100)) (i32.const 2))
                 (i32.le_u (i32.load (i32.const 104)) (i32.const 30000)))
      (then
        (drop (call $args_get (i32.const 1024) (i32.const 2048)))
        (local.set $p (i32.load (i32.const 1028)))
        (local.set $n (i64.const 0))
        (block $end
          (loop $digits
            (local.set $c (i32.sub (i32.load8_u (local.get $p)) (i32.const 48)))
            (br_if $end (i32.gt_u (local.get $c) (i32.const 9)))
            (local.set $n (i64.add (i64.mul (local.get $n) (i64.const 10)) (i64.extend_i32_u (local.get $c))))
            (local.set $p (i32.add (local.get $p) (i32.const 1)))
            (br $digits)))))
    (local.set $n (i64.mul (local.get $n) (i64.const 1000000)))
    (local.set $x (i64.const 0x9e3779b97f4a7c15))
    (block $done
      (loop $round
        (br_if $done (i64.eqz (local.get $n)))
        (local.set $x (i64.xor (local.get $x) (i64.shl (local.get $x) (i64.const 13))))
        (local.set $x (i64.xor (local.get $x) (i64.shr_u (local.get $x) (i64.const 7))))
        (local.set $x (i64.xor (local.get $x) (i64.shl (local.get $x) (i64.const 17))))
        (local.set $n (i64.sub (local.get $n) (i64.const 1)))
        (br $round)))
    ;; 16 hex digits at 32..47, newline at 48
    (local.set $i (i32.const 15))
    (loop $digit
      (i32.store8 (i32.add (i32.const 32) (local.get $i))
        (i32.load8_u (i32.wrap_i64 (i64.and (local.get $x) (i64.const 15)))))
      (local.set $x (i64.shr_u (local.get $x) (i64.const 4)))
      (local.set $i (i32.sub (local.get $i) (i32.const 1)))
      (br_if $digit (i32.ge_s (local.get $i) (i32.const 0))))
    (i32.store8 (i32.const 48) (i32.const 10))
    ;; iovec at 64: {32, 17}
    (i32.store (i32.const 64) (i32.const 32))
    (i32.store (i32.const 68) (i32.const 17))
    (drop (call $fd_write (i32.const 1) (i32.const 64) (i32.const 1) (i32.const 72)))))

;; wat2wasm --debug-names
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory 1)
  (func (export "_start") (local $i i32) (local $end i32)
    (drop (memory.grow (i32.const 19)))
    (local.set $end (i32.mul (memory.size) (i32.const 65536)))
    (loop $scan
      (if (i64.ne (i64.load (local.get $i)) (i64.const 0))
        (then (call $exit (i32.const 1))))
      (local.set $i (i32.add (local.get $i) (i32.const 8)))
      (br_if $scan (i32.lt_u (local.get $i) (local.get $end))))))

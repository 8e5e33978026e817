;; CPU-bound benchmark job: total Collatz steps for n in 1..N (N from the
;; first 4 bytes of stdin, little-endian; 0 means 300000). Writes the
;; 8-byte little-endian total to stdout. Only fd_read/fd_write are imported.
(module
  (import "wasi_snapshot_preview1" "fd_read"
    (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1 1)
  (func (export "_start")
    (local $n i64)
    (local $limit i64)
    (local $x i64)
    (local $total i64)
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const 4))
    (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
    (local.set $limit (i64.extend_i32_u (i32.load (i32.const 64))))
    (if (i64.eqz (local.get $limit)) (then (local.set $limit (i64.const 300000))))
    (local.set $n (i64.const 1))
    (block $done
      (loop $each
        (br_if $done (i64.gt_u (local.get $n) (local.get $limit)))
        (local.set $x (local.get $n))
        (block $one
          (loop $step
            (br_if $one (i64.eq (local.get $x) (i64.const 1)))
            (if (i64.eqz (i64.and (local.get $x) (i64.const 1)))
              (then (local.set $x (i64.shr_u (local.get $x) (i64.const 1))))
              (else (local.set $x (i64.add (i64.mul (local.get $x) (i64.const 3)) (i64.const 1)))))
            (local.set $total (i64.add (local.get $total) (i64.const 1)))
            (br $step)))
        (local.set $n (i64.add (local.get $n) (i64.const 1)))
        (br $each)))
    (i64.store (i32.const 64) (local.get $total))
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const 8))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))

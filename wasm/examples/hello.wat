;; The hello job (issue #6): reverses its input, `Hello, World` -> `dlroW ,olleH`.
;;
;; A WASI preview1 command: reads stdin (up to 32 KiB), writes the input's
;; UTF-8 sequences in reverse order to stdout. Invalid UTF-8 is reversed
;; byte-group-wise, never rejected. `deno task wasm:build` turns this file
;; into hello.wasm byte-identically (wabt).
(module
  (import "wasi_snapshot_preview1" "fd_read"
    (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))

  ;; 0..8: one iovec; 8..12: bytes read/written; 1024: input; 33792: output.
  (memory (export "memory") 2 2)

  (func $read_all (result i32)
    (local $len i32)
    (local $n i32)
    (block $done
      (loop $more
        (br_if $done (i32.ge_u (local.get $len) (i32.const 32768)))
        (i32.store (i32.const 0) (i32.add (i32.const 1024) (local.get $len)))
        (i32.store (i32.const 4) (i32.sub (i32.const 32768) (local.get $len)))
        (if (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8))
          (then (unreachable)))
        (local.set $n (i32.load (i32.const 8)))
        (br_if $done (i32.eqz (local.get $n)))
        (local.set $len (i32.add (local.get $len) (local.get $n)))
        (br $more)))
    (local.get $len))

  (func (export "_start")
    (local $i i32)
    (local $j i32)
    (local $k i32)
    (local $out i32)
    (local.set $i (call $read_all))
    (local.set $out (i32.const 33792))
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $i)))
        ;; $j: first byte of the UTF-8 sequence that ends just before $i.
        (local.set $j (i32.sub (local.get $i) (i32.const 1)))
        (block $found
          (loop $back
            (br_if $found (i32.eqz (local.get $j)))
            (br_if $found
              (i32.ne
                (i32.and (i32.load8_u offset=1024 (local.get $j)) (i32.const 0xc0))
                (i32.const 0x80)))
            (local.set $j (i32.sub (local.get $j) (i32.const 1)))
            (br $back)))
        (local.set $k (local.get $j))
        (block $copied
          (loop $copy
            (br_if $copied (i32.ge_u (local.get $k) (local.get $i)))
            (i32.store8 (local.get $out) (i32.load8_u offset=1024 (local.get $k)))
            (local.set $out (i32.add (local.get $out) (i32.const 1)))
            (local.set $k (i32.add (local.get $k) (i32.const 1)))
            (br $copy)))
        (local.set $i (local.get $j))
        (br $next)))
    (i32.store (i32.const 0) (i32.const 33792))
    (i32.store (i32.const 4) (i32.sub (local.get $out) (i32.const 33792)))
    (if (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))
      (then (unreachable)))))

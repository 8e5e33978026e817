;; The hello job as a component (world phase:job/job in hello_component.wit):
;; `run(input: list<u8>) -> list<u8>` reverses the input's UTF-8 sequences,
;; `Hello, World` -> `dlroW ,olleH`. Canonical ABI by hand: a bump
;; allocator for cabi_realloc, a static return area at 16.
;; `deno task wasm:build` embeds the WIT, wraps it as a component and
;; transpiles it with jco into examples/hello_component/.
(module
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))

  (func $cabi_realloc (export "cabi_realloc")
    (param $old i32) (param $old_size i32) (param $align i32) (param $size i32) (result i32)
    (local $ptr i32)
    (local $end i32)
    (local.set $ptr
      (i32.and
        (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
        (i32.sub (i32.const 0) (local.get $align))))
    (local.set $end (i32.add (local.get $ptr) (local.get $size)))
    (if (i32.gt_u (local.get $end) (i32.mul (memory.size) (i32.const 65536)))
      (then
        (if (i32.lt_s
              (memory.grow
                (i32.add
                  (i32.shr_u
                    (i32.sub (local.get $end) (i32.mul (memory.size) (i32.const 65536)))
                    (i32.const 16))
                  (i32.const 1)))
              (i32.const 0))
          (then (unreachable)))))
    (global.set $heap (local.get $end))
    (local.get $ptr))

  (func (export "run") (param $in i32) (param $len i32) (result i32)
    (local $out i32)
    (local $o i32)
    (local $i i32)
    (local $j i32)
    (local $k i32)
    (local.set $out (call $cabi_realloc (i32.const 0) (i32.const 0) (i32.const 1) (local.get $len)))
    (local.set $o (local.get $out))
    (local.set $i (local.get $len))
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $i)))
        (local.set $j (i32.sub (local.get $i) (i32.const 1)))
        (block $found
          (loop $back
            (br_if $found (i32.eqz (local.get $j)))
            (br_if $found
              (i32.ne
                (i32.and (i32.load8_u (i32.add (local.get $in) (local.get $j))) (i32.const 0xc0))
                (i32.const 0x80)))
            (local.set $j (i32.sub (local.get $j) (i32.const 1)))
            (br $back)))
        (local.set $k (local.get $j))
        (block $copied
          (loop $copy
            (br_if $copied (i32.ge_u (local.get $k) (local.get $i)))
            (i32.store8 (local.get $o) (i32.load8_u (i32.add (local.get $in) (local.get $k))))
            (local.set $o (i32.add (local.get $o) (i32.const 1)))
            (local.set $k (i32.add (local.get $k) (i32.const 1)))
            (br $copy)))
        (local.set $i (local.get $j))
        (br $next)))
    (i32.store (i32.const 16) (local.get $out))
    (i32.store (i32.const 20) (local.get $len))
    (i32.const 16)))

(module
  (tag $e (param i32))
  (func $thrower (param i32)
    try
      local.get 0
      throw $e
    catch_all
      rethrow 0
    end)
  (func (export "run") (param i32) (result i32) (local $n i32)
    (loop $l
      try
        local.get 0
        call $thrower
      catch $e
        drop
      end
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $n) (local.get 0))))
    (local.get $n)))

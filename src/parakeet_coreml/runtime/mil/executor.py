"""The interpreter loop: run planned steps over a flat slot environment.

Per step: gather arguments (constants pre-bound; fp16 values widened to fp32 where the
kernel computes), call the kernel, store each output in its declared dtype (this cast is
where fp16 rounding happens), then drop values whose last reader this was.
"""

from __future__ import annotations

import torch


def run_steps(steps: list, env: list) -> None:
    st = None
    try:
        for st in steps:
            kw = dict(st.consts)
            for name, slot, widen in st.vars:
                v = env[slot]
                kw[name] = v.float() if widen else v
            for name, items in st.tuples:
                kw[name] = [
                    (env[s].float() if w else env[s]) if s >= 0 else c for s, w, c in items
                ]
            for name, slot in st.dyn_static:
                kw[name] = env[slot].tolist()
            res = st.fn(env, **kw) if st.control else st.fn(**kw)
            if isinstance(res, torch.Tensor):
                dt = st.out_dtypes[0]
                env[st.outs[0]] = res if dt is None or res.dtype == dt else res.to(dt)
            else:
                for slot, r, dt in zip(st.outs, res, st.out_dtypes):
                    env[slot] = r if dt is None or r.dtype == dt else r.to(dt)
            for s in st.free:
                env[s] = None
    except Exception as e:
        if st is None or getattr(e, "_mil_op", False):
            raise
        err = RuntimeError(f"MIL op {st.name!r} ({st.op_type}) failed: {e}")
        err._mil_op = True  # type: ignore[attr-defined]
        raise err from e

"""Control-flow ops (``while_loop``, ``cond``): nested blocks planned like the function body
and run by the executor against the shared slot environment."""

from __future__ import annotations

from typing import Any

from .executor import run_steps
from .plan import BlockPlan, Planner, Step, read_output


def _clear(plan: BlockPlan, env: list) -> None:
    for s, _, _ in plan.outputs:
        if s >= 0 and s in plan.defined:
            env[s] = None


def plan_control(planner: Planner, op) -> Step:
    if op.op_type == "cond":
        true_plan = planner.plan_block(op.blocks[0])
        false_plan = planner.plan_block(op.blocks[1])

        def run_cond(env: list, pred) -> tuple:
            plan = true_plan if bool(pred) else false_plan
            run_steps(plan.steps, env)
            outs = tuple(read_output(plan, i, env) for i in range(len(plan.outputs)))
            _clear(plan, env)
            return outs

        step = planner.make_step(op, run_cond, control=True)
        step.nested_reads = true_plan.reads() | false_plan.reads()
        return step

    cond_plan = planner.plan_block(op.blocks[0])
    body_plan = planner.plan_block(op.blocks[1])

    def run_while(env: list, loop_vars: list[Any]) -> tuple:
        vals = list(loop_vars)
        while True:
            for s, v in zip(cond_plan.input_slots, vals):
                env[s] = v
            run_steps(cond_plan.steps, env)
            go = bool(read_output(cond_plan, 0, env))
            _clear(cond_plan, env)
            if not go:
                break
            for s, v in zip(body_plan.input_slots, vals):
                env[s] = v
            run_steps(body_plan.steps, env)
            vals = [read_output(body_plan, i, env) for i in range(len(body_plan.outputs))]
            _clear(body_plan, env)
        for s in cond_plan.input_slots + body_plan.input_slots:
            env[s] = None
        return tuple(vals)

    step = planner.make_step(op, run_while, control=True)
    step.nested_reads = cond_plan.reads() | body_plan.reads()
    return step

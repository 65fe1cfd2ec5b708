"""Deployment in Python: the safety guard, the real-time control loop, fault injection and spoken missions.

    guard.py       Guard: input checks, watchdog, output bounds, fallbacks (rules from the manifest's "safety")
    loop.py        ControlLoop: absolute-deadline scheduling, per-tick timing, interventions, faults
    robots.py      the simulated robots (grid world, MuJoCo tabletop) and recorded-reading replay
    faults.py      the fault kinds and their injection
    missions.py    text -> HRI pipeline -> guard -> skill (go_to, pick, stop), and their evaluation
    controller.py  assembling it from exports, and the experiments of notebook 07 (``python -m embodied_lib.deploy``)
"""

"""Manipulation (notebook 02): grasp-and-lift in MuJoCo from a camera frame, by behaviour cloning.

``env`` TabletopEnv; ``expert`` the scripted expert; ``demonstrations`` recorded expert data;
``model`` ManipulationNet and its spec; ``train`` behaviour cloning; ``evaluate`` closed-loop success;
``policy`` the network behind the policy interface.
"""

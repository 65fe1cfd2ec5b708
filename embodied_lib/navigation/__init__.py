"""Navigation (notebook 01): a grid-world robot driven by a DQN.

``env`` GridWorldEnv and the robot-centred observation; ``model`` DQNAgent and its spec; ``train``
Double DQN; ``evaluate`` success on held-out maps; ``policy`` the DQN behind the policy interface.
"""

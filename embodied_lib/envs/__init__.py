"""Gymnasium environments of the workbook (registered as ``embodied/<Name>-v0``)."""
import gymnasium as gym

from embodied_lib.envs.gridworld import ACTIONS, CHANNELS, GridWorldEnv, bfs_distances

if "embodied/GridWorld-v0" not in gym.registry:
    gym.register("embodied/GridWorld-v0", entry_point="embodied_lib.envs.gridworld:GridWorldEnv")
if "embodied/Tabletop-v0" not in gym.registry:  # MuJoCo is imported only when the env is made
    gym.register("embodied/Tabletop-v0", entry_point="embodied_lib.envs.tabletop:TabletopEnv")

__all__ = ["ACTIONS", "CHANNELS", "GridWorldEnv", "bfs_distances"]

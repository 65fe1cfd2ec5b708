"""Gymnasium environments of the workbook (registered as ``embodied/<Name>-v0``)."""
import gymnasium as gym

from embodied_lib.envs.gridworld import ACTIONS, CHANNELS, GridWorldEnv, bfs_distances

if "embodied/GridWorld-v0" not in gym.registry:
    gym.register("embodied/GridWorld-v0", entry_point="embodied_lib.envs.gridworld:GridWorldEnv")

__all__ = ["ACTIONS", "CHANNELS", "GridWorldEnv", "bfs_distances"]

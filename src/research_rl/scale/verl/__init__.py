"""The verl adapter (``research-rl[verl]``): a ReSearch agent loop, the reward entry point, the
dataset converter and the launch files. Imports without verl; see ``agent_loop`` for how."""

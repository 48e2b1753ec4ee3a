"""The seed notebook's API; ``from midnite.visualization.base import *`` brings all of it."""

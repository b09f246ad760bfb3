from .FocalModulation import *

__version__ = "0.1.0"
DISTRIBUTION = "pyseqtag"  # the name to install (the import name and the command stay `seqtag`)
FORMAT_VERSION = 1

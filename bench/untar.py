"""Unpack a tar of any compression Python reads (gz, xz) into a folder: a bare GPU machine may lack the
xz tool that GNU tar calls. Usage: python3 bench/untar.py ARCHIVE DIR"""
import sys
import tarfile

if len(sys.argv) != 3:
    sys.exit(__doc__)
with tarfile.open(sys.argv[1]) as t:  # mode "r:*": the compression is read from the file
    t.extractall(sys.argv[2], filter="data")

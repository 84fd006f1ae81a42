import sys

from keras_pbasr.cli import main

sys.exit(main())

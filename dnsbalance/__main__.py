import sys

from dnsbalance.cli import main

sys.exit(main())

from jaxdistill.cli import main
import sys
sys.exit(main())

from smeline.cli import main

raise SystemExit(main())

from federator.cli import main

raise SystemExit(main())

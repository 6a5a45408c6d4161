from dedit_app.cli import main

raise SystemExit(main())

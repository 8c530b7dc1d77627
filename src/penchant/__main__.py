from penchant.cli.main import main

main()

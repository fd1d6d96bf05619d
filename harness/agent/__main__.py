from harness.agent.server import main

main()

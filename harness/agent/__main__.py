from harness.agent.agent_side import main

main()

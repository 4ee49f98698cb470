"""What is stored for a result, how it is sealed into bytes, and how it becomes a result again."""

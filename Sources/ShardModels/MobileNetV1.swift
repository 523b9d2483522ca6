import ShardNN

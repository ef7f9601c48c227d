"""rosbag2 recordings: reading and writing (rosbags), labelling a bag, turning a bag into a dataset."""

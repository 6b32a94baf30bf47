DROP TABLE leftover_folders;

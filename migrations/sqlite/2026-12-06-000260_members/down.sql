DROP TABLE member_invitations;
DROP TABLE tenant_members;
